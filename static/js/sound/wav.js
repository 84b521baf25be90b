// WAV files from rendered audio: 16-bit PCM, interleaved, the RIFF layout every audio tool reads.

const BITS = 16;

/** Float channels (−1…1, equal lengths) → the bytes of a WAV file. */
export function encodeWav(channels, sampleRate) {
  const n = channels.length;
  const frames = n ? channels[0].length : 0;
  const dataBytes = frames * n * (BITS / 8);
  const buffer = new ArrayBuffer(44 + dataBytes);
  const view = new DataView(buffer);
  const text = (at, s) => [...s].forEach((c, i) => view.setUint8(at + i, c.charCodeAt(0)));
  text(0, 'RIFF');
  view.setUint32(4, 36 + dataBytes, true);
  text(8, 'WAVE');
  text(12, 'fmt ');
  view.setUint32(16, 16, true); // fmt chunk size
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, n, true);
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * n * (BITS / 8), true); // bytes per second
  view.setUint16(32, n * (BITS / 8), true); // block align
  view.setUint16(34, BITS, true);
  text(36, 'data');
  view.setUint32(40, dataBytes, true);
  const pcm = new Int16Array(buffer, 44, frames * n);
  for (let c = 0; c < n; c++) {
    const data = channels[c];
    for (let i = 0; i < frames; i++) {
      const v = Math.max(-1, Math.min(1, data[i]));
      pcm[i * n + c] = v < 0 ? v * 0x8000 : v * 0x7fff;
    }
  }
  return buffer;
}
