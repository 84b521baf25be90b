// Presenter mode: full screen (when the browser allows it), controls hidden, large type, high contrast.

export class PresenterMode {
  /** button: the toggle (aria-pressed); onChange(on) lets the canvases pick up the new theme. */
  constructor(button, onChange) {
    this.button = button;
    this.onChange = onChange;
    this.on = false;
    this.fullscreen = false; // we asked for full screen and got it
    button.addEventListener('click', () => this.toggle());
    document.addEventListener('fullscreenchange', () => {
      // Esc in full screen is taken by the browser: leaving full screen leaves presenter mode.
      if (!document.fullscreenElement && this.fullscreen) {
        this.fullscreen = false;
        if (this.on) this.leave();
      }
    });
  }

  toggle() {
    if (this.on) this.leave();
    else this.enter();
  }

  enter() {
    if (this.on) return;
    this.set(true);
    const root = document.documentElement;
    if (!document.fullscreenEnabled || document.fullscreenElement || !root.requestFullscreen) return;
    root
      .requestFullscreen({ navigationUI: 'hide' })
      .then(() => {
        if (this.on) this.fullscreen = true;
        else document.exitFullscreen().catch(() => {}); // left again before the browser answered
      })
      .catch(() => {}); // refused (no gesture, kiosk, iframe): presenter mode still fills the window
  }

  leave() {
    if (!this.on) return;
    this.set(false);
    const ours = this.fullscreen;
    this.fullscreen = false; // the coming fullscreenchange is ours, not the user's Esc
    if (document.fullscreenElement && ours) document.exitFullscreen().catch(() => {});
  }

  set(on) {
    this.on = on;
    document.body.dataset.presenting = String(on);
    this.button.setAttribute('aria-pressed', String(on));
    this.onChange(on);
  }
}
