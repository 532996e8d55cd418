// What the benchmark scripts share: the median of the numbers in a list (null when there are none), and a figure to one decimal.
export const median = (xs) => {
  const s = xs.filter((x) => typeof x === 'number').sort((a, b) => a - b);
  if (!s.length) return null;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

export const fmt1 = (v) => (v == null ? '-' : v.toFixed(1));
