// Sound editor settings: presets, URL text both ways, solo and mute rules.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PRESETS, audible, decodeSettings, encodeSettings, preset, presetOf } from '../../static/js/sound/settings.js';

test('every preset round-trips through its URL text', () => {
  for (const name of Object.keys(PRESETS)) {
    assert.equal(encodeSettings(preset(name)), name);
    const { settings, problems } = decodeSettings(name);
    assert.deepEqual(problems, []);
    assert.deepEqual(settings, preset(name));
    assert.equal(presetOf(settings), name);
  }
});

test('edited settings round-trip field by field', () => {
  const s = preset('classic');
  s.scale = 'whole-tone';
  s.instruments.echoes = 'marimba';
  s.target = 'pitch';
  s.off = ['test', 'breath'];
  s.solo = ['echoes'];
  const text = encodeSettings(s);
  assert.equal(
    text,
    'scale:whole-tone,beats:bell,echoes:marimba,test:pluck,map:pitch,contrast:normal,off:breath+test,solo:echoes',
  );
  const back = decodeSettings(text);
  assert.deepEqual(back.problems, []);
  assert.equal(encodeSettings(back.settings), text);
  assert.equal(presetOf(back.settings), null);
});

test('bad URL text is reported and falls back to Classic values, losing the good parts nowhere', () => {
  const { settings, problems } = decodeSettings('scale:blues,beats:kazoo,map:pitch,off:drums+echoes,volume:11');
  assert.equal(settings.scale, 'pentatonic');
  assert.equal(settings.instruments.beats, 'bell');
  assert.equal(settings.target, 'pitch');
  assert.deepEqual(settings.off, ['echoes']);
  assert.equal(problems.length, 4, problems.join('; '));
  assert.deepEqual(decodeSettings('').settings, preset('classic'));
});

test('minimal keeps beats (and the crescendo) alone; solo wins over off', () => {
  const m = preset('minimal');
  assert.deepEqual(
    ['beats', 'echoes', 'breath', 'test', 'cues'].filter((v) => audible(m, v)),
    ['beats'],
  );
  const s = preset('classic');
  s.off = ['echoes'];
  s.solo = ['echoes', 'cues'];
  assert.deepEqual(
    ['beats', 'echoes', 'breath', 'test', 'cues'].filter((v) => audible(s, v)),
    ['echoes', 'cues'],
  );
});
