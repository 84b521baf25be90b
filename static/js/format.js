// Numbers as the page writes them in text: counts with thousands separators, losses to a few digits.

const COUNT = new Intl.NumberFormat('en-US'); // toLocaleString builds a formatter per call: slow at 60 Hz

/** A whole count as people read it: 12,345. */
export function formatCount(n) {
  return COUNT.format(n);
}

/** A loss: three decimals, or two significant digits in e-notation below 0.001; a dash for none. */
export function formatLoss(v) {
  return v === null || v === undefined ? '–' : v < 0.001 ? v.toExponential(2) : v.toFixed(3);
}
