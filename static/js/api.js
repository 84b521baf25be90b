// HTTP calls to the Backbeat API; failures become ApiError carrying status and detail.

export class ApiError extends Error {
  constructor(status, detail) {
    super(readable(status, detail));
    this.status = status;
    this.detail = detail;
  }

  /** For 422: [{field, message}] from pydantic's `loc` (the last named part of the path). */
  fieldErrors() {
    if (this.status !== 422 || !Array.isArray(this.detail)) return [];
    return this.detail.map((d) => {
      const names = (d.loc || []).filter((p) => typeof p === 'string' && p !== 'body');
      return { field: names.length ? names[names.length - 1] : null, message: d.msg || 'invalid' };
    });
  }
}

export const UNREACHABLE = 'Cannot reach the Backbeat server';

function readable(status, detail) {
  if (typeof detail === 'string') return detail;
  if (Array.isArray(detail)) return detail.map((d) => d.msg).join('; ');
  if (status === 0) return UNREACHABLE;
  return `Request failed (${status})`;
}

const TOKEN_HEADER = 'x-backbeat-token'; // presenter token when the server is shared (--share)
let token = null;

/** Remember the presenter token (from the presenter link); sent with every request. */
export function setToken(value) {
  token = value || null;
}

export function getToken() {
  return token;
}

async function request(method, path, body) {
  const form = body instanceof FormData; // the browser sets the multipart boundary itself
  const headers = body === undefined || form ? {} : { 'Content-Type': 'application/json' };
  if (token) headers[TOKEN_HEADER] = token;
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : form ? body : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, null);
  }
  if (res.status === 204) return null;
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (!res.ok) throw new ApiError(res.status, data && data.detail !== undefined ? data.detail : null);
  return data;
}

export const api = {
  health: () => request('GET', '/api/health'),
  session: () => request('GET', '/api/session'),
  datasets: () => request('GET', '/api/datasets'),
  defaults: () => request('GET', '/api/defaults'),
  scenes: () => request('GET', '/api/scenes'),
  dataset: (name) => request('GET', `/api/datasets/${encodeURIComponent(name)}`),
  uploadDataset: (form) => request('POST', '/api/datasets', form),
  saveDataset: (body) => request('POST', '/api/datasets', body),
  deleteDataset: (name) => request('DELETE', `/api/datasets/${encodeURIComponent(name)}`),
  runs: () => request('GET', '/api/runs'),
  run: (id) => request('GET', `/api/runs/${id}`),
  createRun: (config) => request('POST', '/api/runs', config),
  control: (id, action, extra = {}) => request('POST', `/api/runs/${id}/control`, { action, ...extra }),
  model: (id, step = null) => request('GET', `/api/runs/${id}/model${step === null ? '' : `?step=${step}`}`),
  data: (id) => request('GET', `/api/runs/${id}/data`),
  metrics: (id, every = 1) => request('GET', `/api/runs/${id}/metrics?every=${every}`),
  steps: (id, start = 0, stop = null) =>
    request('GET', `/api/runs/${id}/metrics?start=${start}${stop ? `&stop=${stop}` : ''}`),
};

/** Download addresses for a run: every step's metrics as CSV, and the trained model as JSON. */
export function exportUrls(id) {
  const run = encodeURIComponent(id);
  return { csv: `/api/runs/${run}/metrics?format=csv`, model: `/api/runs/${run}/model` };
}
