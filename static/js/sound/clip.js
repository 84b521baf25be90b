// "Record clip": the stage's canvases composed into one video with the sound, recorded as WebM for slides.
import { download } from './exporter.js';

export const MAX_CLIP_SECONDS = 60; // s, then the clip stops by itself
const FPS = 30;
const MAX_WIDTH = 1280; // px of the recorded video
const MIME_TYPES = ['video/webm;codecs=vp8,opus', 'video/webm;codecs=vp9,opus', 'video/webm'];

export class ClipRecorder {
  /** stage: the element whose canvases are recorded; audio: the AudioEngine (its desk gives the sound). */
  constructor(button, stage, audio, onStatus) {
    Object.assign(this, { button, stage, audio, onStatus });
    this.recorder = null;
    button.addEventListener('click', () => (this.recorder ? this.stop() : this.start()));
  }

  start() {
    if (!window.MediaRecorder) {
      this.onStatus('This browser cannot record video (no MediaRecorder).');
      return;
    }
    this.audio.unlock();
    const box = this.stage.getBoundingClientRect();
    const scale = Math.min(1, MAX_WIDTH / box.width);
    const canvas = document.createElement('canvas');
    canvas.width = Math.round(box.width * scale) & ~1; // encoders want even sizes
    canvas.height = Math.round(box.height * scale) & ~1;
    const g = canvas.getContext('2d');
    const background = getComputedStyle(document.body).backgroundColor || '#000';
    let painted = 0;
    const paint = (now = performance.now()) => {
      this.frame = requestAnimationFrame(paint);
      if (now - painted < 1000 / FPS) return;
      painted = now;
      g.fillStyle = background;
      g.fillRect(0, 0, canvas.width, canvas.height);
      for (const c of this.stage.querySelectorAll('canvas')) {
        const r = c.getBoundingClientRect();
        if (!r.width || !r.height) continue;
        g.drawImage(c, (r.left - box.left) * scale, (r.top - box.top) * scale, r.width * scale, r.height * scale);
      }
    };
    paint();
    const tracks = [...canvas.captureStream(FPS).getVideoTracks()];
    if (this.audio.desk) tracks.push(...this.audio.desk.stream().getAudioTracks());
    this.kinds = tracks.map((t) => t.kind); // read by tests: video and sound both recorded
    const mimeType = MIME_TYPES.find((t) => MediaRecorder.isTypeSupported(t)) || '';
    const chunks = [];
    this.chunks = chunks; // read by tests: recorded data has arrived
    const recorder = new MediaRecorder(new MediaStream(tracks), mimeType ? { mimeType } : {});
    recorder.ondataavailable = (e) => e.data.size && chunks.push(e.data);
    recorder.onstop = () => {
      cancelAnimationFrame(this.frame);
      tracks.filter((t) => t.kind === 'video').forEach((t) => t.stop());
      download(
        new Blob(chunks, { type: 'video/webm' }),
        `backbeat-clip-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-')}.webm`,
      );
      this.onStatus(`Clip saved (${((performance.now() - this.began) / 1000).toFixed(1)} s).`);
    };
    recorder.start(1000);
    this.recorder = recorder;
    this.began = performance.now();
    this.timer = setTimeout(() => this.stop(), MAX_CLIP_SECONDS * 1000);
    this.button.setAttribute('aria-pressed', 'true');
    this.button.textContent = 'Stop recording';
    this.onStatus(`Recording the stage and its sound (stops by itself after ${MAX_CLIP_SECONDS} s)…`);
  }

  stop() {
    if (!this.recorder) return;
    clearTimeout(this.timer);
    this.recorder.stop();
    this.recorder = null;
    this.button.setAttribute('aria-pressed', 'false');
    this.button.textContent = 'Record clip';
  }
}
