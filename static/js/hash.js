// The URL hash holds every setting (run config, tempo, view toggles), so a prepared run is a bookmark.

/** The hash's settings as URLSearchParams. */
export function readHash() {
  return new URLSearchParams(location.hash.slice(1));
}

/** Merge settings into the hash without adding a history entry; null or undefined removes a key. */
export function updateHash(settings) {
  const params = readHash();
  for (const [key, value] of Object.entries(settings)) {
    if (value === null || value === undefined) params.delete(key);
    else params.set(key, String(value));
  }
  // commas and brackets are legal in a fragment: keep `features=x1,sin(x1)` readable in bookmarks
  const text = params.toString().replace(/%2C/g, ',').replace(/%28/g, '(').replace(/%29/g, ')');
  history.replaceState(history.state, '', `${location.pathname}${location.search}${text ? `#${text}` : ''}`);
}
