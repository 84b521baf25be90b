// Who this page is: the presenter link's token is read once, hidden from the address bar, and asked about.
import { api, getToken, setToken } from './api.js';

const TOKEN_KEY = 'backbeat-token'; // sessionStorage: the presenter token survives reloads

/** True when this page may control runs (always on a private server; with the token when shared). */
export async function presenterSession() {
  const query = new URLSearchParams(location.search);
  const fromLink = query.get('token');
  if (fromLink) {
    sessionStorage.setItem(TOKEN_KEY, fromLink);
    query.delete('token');
    const rest = query.toString();
    history.replaceState(null, '', `${location.pathname}${rest ? `?${rest}` : ''}${location.hash}`);
  }
  setToken(sessionStorage.getItem(TOKEN_KEY));
  const viewer = document.body.dataset.role === 'viewer';
  if (!viewer || !getToken()) return !viewer;
  try {
    const session = await api.session();
    document.body.dataset.role = session.role;
    return session.role === 'presenter';
  } catch {
    return false;
  }
}
