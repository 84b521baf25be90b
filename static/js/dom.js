// The one DOM shorthand the page's modules share.

/** The element with this id, or null. */
export const $ = (id) => document.getElementById(id);
