// Browsers start audio only after a gesture: until then a clear "click to enable sound" button shows.

export class SoundGate {
  constructor(button, audio) {
    this.button = button;
    this.audio = audio;
    this.open = null;
    button.addEventListener('click', () => audio.unlock());
  }

  /** Called every frame; touches the DOM only when the audio state changes. */
  update() {
    const open = Boolean(this.audio.ctx) && this.audio.ctx.state === 'running';
    if (open === this.open) return;
    this.open = open;
    this.button.hidden = open;
  }
}
