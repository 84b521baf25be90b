// The tempo slider's log scale: slider position ↔ steps per second (pure, unit-tested).

export const TEMPO_MIN = 0.5; // steps/s at the slider's left end
export const TEMPO_MAX = 1000; // steps/s at its right end (log scale between)
export const SLIDER_STEPS = 1000; // the range input's max

/** Slider position (0…1000) → steps per second, rounded to two significant digits. */
export function sliderToTempo(v) {
  const sps = TEMPO_MIN * (TEMPO_MAX / TEMPO_MIN) ** (v / SLIDER_STEPS);
  return Number(sps.toPrecision(2));
}

export function tempoToSlider(sps) {
  return Math.round((Math.log(sps / TEMPO_MIN) / Math.log(TEMPO_MAX / TEMPO_MIN)) * SLIDER_STEPS);
}
