// Upload a CSV from the page: pick the file, the target column and the task; the server checks every cell.
import { api } from './api.js';
import { $ } from './dom.js';
import { formatCount } from './format.js';

export const MAX_BYTES = 5 * 1024 * 1024; // the server's limit for a CSV (5 MiB)
const HEADER_BYTES = 64 * 1024; // enough of the file to read its first row

/** The cells of a CSV's first line (quotes honoured; the delimiter is the most frequent of , ; tab). */
export function headerCells(text) {
  const line = [];
  let cell = '';
  let quoted = false;
  const first = text.replace(/^\uFEFF/, '').split(/\r?\n/, 1)[0] || '';
  const delimiter = [',', ';', '\t'].reduce(
    (best, d) => (first.split(d).length > first.split(best).length ? d : best),
    ',',
  );
  for (let i = 0; i < first.length; i++) {
    const ch = first[i];
    if (quoted) {
      if (ch === '"' && first[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === delimiter) {
      line.push(cell.trim());
      cell = '';
    } else cell += ch;
  }
  line.push(cell.trim());
  return line.filter((c, i) => c || i < line.length - 1);
}

export class UploadPanel {
  /** onUploaded(info): a set was stored; onDeleted(name): one was removed. */
  constructor({ onUploaded, onDeleted }) {
    this.onUploaded = onUploaded;
    this.onDeleted = onDeleted;
    this.current = null; // the selected dataset's catalogue entry
    this.enabled = true;
    $('upload-file').addEventListener('change', () => this.fileChosen());
    $('upload-send').addEventListener('click', () => this.send());
    $('dataset-delete').addEventListener('click', () => this.remove());
  }

  async fileChosen() {
    const file = $('upload-file').files[0];
    this.say('', '');
    $('upload-target').replaceChildren();
    if (!file) return;
    if (file.size > MAX_BYTES) {
      this.say(`The file is ${(file.size / 2 ** 20).toFixed(1)} MiB; the limit is 5 MiB.`, '');
      return;
    }
    const columns = headerCells(await file.slice(0, HEADER_BYTES).text());
    columns.forEach((name, i) => {
      const option = document.createElement('option');
      option.value = name;
      option.textContent = name; // a column name is text, never markup
      option.selected = i === columns.length - 1;
      $('upload-target').append(option);
    });
    if (!$('upload-name').value)
      $('upload-name').value = file.name
        .replace(/\.[^.]*$/, '')
        .replace(/[^A-Za-z0-9 _.()-]/g, '')
        .slice(0, 64);
  }

  async send() {
    const file = $('upload-file').files[0];
    if (!file) return this.say('Choose a CSV file first.', '');
    const form = new FormData();
    form.append('file', file);
    for (const [field, id] of [
      ['target', 'upload-target'],
      ['task', 'upload-task'],
      ['name', 'upload-name'],
    ]) {
      const value = $(id).value.trim();
      if (value) form.append(field, value);
    }
    $('upload-send').disabled = true;
    this.say('', 'Uploading…');
    try {
      const info = await api.uploadDataset(form);
      const how = info.task === 'regression' ? 'regression' : `${info.n_classes} classes`;
      const left = info.ignored_columns.length ? `; text columns left out: ${info.ignored_columns.join(', ')}` : '';
      this.say(
        '',
        `“${info.name}”: ${formatCount(info.rows)} rows, inputs ${info.inputs.join(', ')} (standardised), ${how}${left}.`,
      );
      await this.onUploaded(info);
    } catch (e) {
      this.say(e.message, '');
    } finally {
      $('upload-send').disabled = false;
    }
  }

  async remove() {
    const set = this.current;
    if (!set || set.source !== 'uploaded') return;
    try {
      await api.deleteDataset(set.name);
      this.say('', `Deleted “${set.name}”; runs trained on it keep their data.`);
      await this.onDeleted(set.name);
    } catch (e) {
      this.say(e.message, '');
    }
  }

  /** The form's selected set: uploaded ones can be deleted, and the page says their inputs are standardised. */
  show(set) {
    this.current = set;
    const uploaded = Boolean(set && set.source === 'uploaded');
    $('dataset-delete').hidden = !uploaded || !this.enabled;
    $('standardised-note').hidden = !(uploaded && set.standardized);
  }

  /** Only the presenter uploads or deletes (the server refuses viewers too). */
  setEnabled(enabled) {
    this.enabled = enabled;
    $('upload-field').hidden = !enabled;
    this.show(this.current);
  }

  say(error, status) {
    $('upload-error').textContent = error;
    $('upload-status').textContent = status;
  }
}
