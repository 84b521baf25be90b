// A chart series with bounded memory: points fold into min/max/mean buckets that double in width.

const MAX_BUCKETS = 1000; // per series; each keeps min, max and mean, so ≤ 2,000 drawn points

/** One series: points fold into buckets (min, max, mean) that double in width as history grows. */
export class Series {
  constructor(label, color, { width = 1.6, band = true, dots = false } = {}) {
    Object.assign(this, { label, color, width, band, dots });
    this.clear();
  }

  clear() {
    this.x = [];
    this.lo = [];
    this.hi = [];
    this.sum = [];
    this.w = []; // steps behind each bucket's mean
    this.n = []; // points added to each bucket
    this.per = 1; // points per bucket
  }

  get length() {
    return this.x.length;
  }

  /** A point, or `n` steps summarised as their mean `y` and range lo…hi (an audience frame). */
  add(x, y, n = 1, lo = y, hi = y) {
    if (y === null || y === undefined || !Number.isFinite(y)) return;
    const last = this.x.length - 1;
    if (last >= 0 && this.n[last] < this.per) {
      this.x[last] = x;
      this.lo[last] = Math.min(this.lo[last], lo);
      this.hi[last] = Math.max(this.hi[last], hi);
      this.sum[last] += y * n;
      this.w[last] += n;
      this.n[last] += 1;
      return;
    }
    this.x.push(x);
    this.lo.push(lo);
    this.hi.push(hi);
    this.sum.push(y * n);
    this.w.push(n);
    this.n.push(1);
    if (this.x.length > MAX_BUCKETS) this.fold();
  }

  /** Merge neighbouring buckets pairwise: memory and drawing stay bounded however long the run. */
  fold() {
    const keys = ['x', 'lo', 'hi', 'sum', 'w', 'n'];
    const out = Object.fromEntries(keys.map((k) => [k, []]));
    for (let i = 0; i < this.x.length; i += 2) {
      const j = Math.min(i + 1, this.x.length - 1);
      out.x.push(this.x[j]);
      out.lo.push(Math.min(this.lo[i], this.lo[j]));
      out.hi.push(Math.max(this.hi[i], this.hi[j]));
      out.sum.push(i === j ? this.sum[i] : this.sum[i] + this.sum[j]);
      out.w.push(i === j ? this.w[i] : this.w[i] + this.w[j]);
      out.n.push(i === j ? this.n[i] : this.n[i] + this.n[j]);
    }
    keys.forEach((k) => (this[k] = out[k]));
    this.per *= 2;
  }

  mean(i) {
    return this.sum[i] / this.w[i];
  }

  /** Index of the bucket nearest to x (binary search; x is increasing). */
  nearest(x) {
    let a = 0;
    let b = this.x.length - 1;
    while (b - a > 1) {
      const m = (a + b) >> 1;
      if (this.x[m] < x) a = m;
      else b = m;
    }
    return Math.abs(this.x[a] - x) <= Math.abs(this.x[b] - x) ? a : b;
  }
}
