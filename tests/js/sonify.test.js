// The documented mapping numbers (docs/sound.md), checked on the functions the page plays with.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  BREATH_MIX,
  DB_PER_DECADE,
  ECHO_CAP_DB,
  ECHO_FLOOR_DB,
  ECHO_REFERENCE_DB,
  GRAD_REFERENCE,
  SCALES,
  SWELL_FLOOR,
  beatDegree,
  breathSplit,
  brightnessHz,
  degreeFrequency,
  echoDb,
  echoMapping,
  swellLevel,
  topDegree,
} from '../../static/js/sonify.js';

const close = (a, b, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol, `${a} ≠ ${b} (±${tol})`);

test('the documented echo constants', () => {
  assert.equal(GRAD_REFERENCE, 0.1);
  assert.equal(ECHO_REFERENCE_DB, -15);
  assert.deepEqual(DB_PER_DECADE, { normal: 10, high: 15 });
  assert.equal(ECHO_FLOOR_DB, -45);
  assert.equal(ECHO_CAP_DB, 0);
  assert.ok(DB_PER_DECADE.normal >= 6, 'the issue asks for at least 6 dB per decade');
});

test('echo level: the reference norm sits at the reference level, 10 dB per decade around it', () => {
  close(echoDb(0.1), -15);
  close(echoDb(1), -5);
  close(echoDb(0.01), -25);
  close(echoDb(0.2) - echoDb(0.1), 10 * Math.log10(2)); // 2× = 3.0 dB
  close(echoDb(0.001, 'high'), -45);
  close(echoDb(1, 'high') - echoDb(0.1, 'high'), 15);
});

test('echo level depends on the norm alone: strictly rising between floor and cap', () => {
  const norms = [];
  for (let e = -3.9; e <= 0.4; e += 0.1) norms.push(10 ** e);
  const dbs = norms.map((g) => echoDb(g));
  for (let i = 1; i < dbs.length; i++) assert.ok(dbs[i] > dbs[i - 1], `not rising at ${norms[i]}`);
  assert.deepEqual(
    norms.map((g) => echoDb(g)),
    dbs,
    'same norm, same level, every call',
  );
});

test('vanishing gradients are quiet and dull but never silent; exploding ones are capped', () => {
  for (const g of [1e-4, 1e-8, 1e-30, 0]) {
    const m = echoMapping(g);
    close(m.db, ECHO_FLOOR_DB);
    assert.ok(m.gain > 0.005 && m.gain < 0.006, `floor gain ${m.gain}`); // −45 dB = 0.0056
    close(m.brightness, 0);
  }
  for (const g of [3.17, 100, 1e12, Infinity, NaN, null]) {
    const m = echoMapping(g);
    close(m.db, ECHO_CAP_DB);
    close(m.gain, 1);
    close(m.brightness, 1);
  }
  close(brightnessHz(0), 250);
  close(brightnessHz(1), 10000, 1e-6);
  close(brightnessHz(0.5), 1581.1, 0.1);
});

test('echo targets: brightness and pitch keep the echo at the reference loudness', () => {
  for (const g of [1e-3, 0.1, 2]) {
    for (const target of ['brightness', 'pitch']) close(echoMapping(g, { target }).db, -15);
  }
  close(echoMapping(0.01, { target: 'brightness' }).brightness, echoMapping(0.01).brightness);
  close(echoMapping(1, { target: 'pitch' }).semitones, 4);
  close(echoMapping(0.01, { target: 'pitch' }).semitones, -4);
  close(echoMapping(1e-9, { target: 'pitch' }).semitones, -12);
  close(echoMapping(1e9, { target: 'pitch' }).semitones, 6);
  close(echoMapping(0.5, { target: 'loudness' }).semitones, 0);
});

test('the swell follows the crescendo alone, from 0.3 to 1 of the volume', () => {
  assert.equal(SWELL_FLOOR, 0.3);
  close(swellLevel(0), 0.3);
  close(swellLevel(1), 1);
  close(swellLevel(0.5), 0.65);
  close(swellLevel(null), 0.3);
  close(20 * Math.log10(swellLevel(1) / swellLevel(0)), 10.46, 0.01); // +10.5 dB over a learning run
});

test('breath: tone and noise powers sum to the beat power at every entropy', () => {
  assert.equal(BREATH_MIX, 0.5);
  for (const h of [0, 0.1, 0.5, 0.9, 1, 2, -1, null]) {
    const { tone, noise } = breathSplit(h);
    close(tone ** 2 + noise ** 2, 1);
  }
  close(breathSplit(1).noise ** 2, 0.5);
  close(breathSplit(0).noise, 0);
});

test('pitch: two octaves of every scale from C4, landing on the tonic', () => {
  close(degreeFrequency(0), 261.63);
  for (const scale of Object.keys(SCALES)) {
    assert.equal(topDegree(scale), 2 * SCALES[scale].length);
    close(degreeFrequency(beatDegree(1, scale), scale), 261.63 * 4, 1e-6);
    close(degreeFrequency(beatDegree(0, scale), scale), 261.63);
  }
  close(degreeFrequency(1, 'minor') / 261.63, 2 ** (2 / 12));
  close(degreeFrequency(2, 'minor') / 261.63, 2 ** (3 / 12)); // the minor third
  close(degreeFrequency(1, 'chromatic') / 261.63, 2 ** (1 / 12));
  close(degreeFrequency(-1) / 261.63, 2 ** (-3 / 12)); // A3 below the pentatonic tonic
  assert.equal(beatDegree(0.5, 'pentatonic'), 5);
});
