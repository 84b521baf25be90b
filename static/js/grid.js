// The eval grid's cells: base64 of zlib-compressed uint8 (app/engine/grid.py), inflated by the browser's own zlib.

/** base64 → bytes. */
function base64Bytes(b64) {
  const text = atob(b64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

/** A grid's cells: size × size uint8 (row-major, row 0 = ymax), as the server quantised them. */
export async function gridCells(grid) {
  const packed = new Blob([base64Bytes(grid.zlib)]).stream();
  const raw = await new Response(packed.pipeThrough(new DecompressionStream('deflate'))).arrayBuffer();
  const cells = new Uint8Array(raw);
  if (cells.length !== grid.size * grid.size) throw new Error(`a ${grid.size}² grid of ${cells.length} cells`);
  return cells;
}
