import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jsonLines, runCli, stderrLines } from '../helpers/cli.js';
import { testVideos } from '../helpers/media.js';

const root = await mkdtemp(join(tmpdir(), 'shoal-create-warn-'));
after(() => rm(root, { recursive: true, force: true }));

/** Warning lines only: progress lines go to stderr too. */
const warningsOf = (stderr: string): string[] => stderrLines({ stderr }).filter((l) => l.startsWith('warning: '));

const ADVICE = 'moov atom at the end; players must download the end first. Re-encode with `ffmpeg -i in.mp4 -c copy -movflags +faststart out.mp4`';

test('create warns about MP4/M4V/MOV files with moov at the end, and only those', { timeout: 60_000 }, async (t) => {
  const v = await testVideos(t);
  if (!v) return;
  const share = join(root, 'share');
  await mkdir(join(share, 'clips'), { recursive: true });
  await copyFile(v.moovAtEnd, join(share, 'clips', 'late.mp4'));
  await copyFile(v.moovAtEnd, join(share, 'late.MOV'));
  await copyFile(v.moovAtEnd, join(share, 'late.m4v'));
  await copyFile(v.faststart, join(share, 'fast.mp4'));
  await copyFile(v.matroska, join(share, 'video.mkv'));
  await copyFile(v.moovAtEnd, join(share, 'late-but-named.bin'));   // not checked: the name says it is no video
  await writeFile(join(share, 'fake.mp4'), 'not an mp4 at all');      // unknown layout: no warning

  const human = await runCli(['create', share, '-o', join(root, 'share.torrent')]);
  assert.equal(human.code, 0, human.stderr);
  const warnings = warningsOf(human.stderr).sort();
  assert.deepEqual(warnings, [
    `warning: clips/late.mp4: ${ADVICE}`,
    `warning: late.MOV: ${ADVICE}`,
    `warning: late.m4v: ${ADVICE}`,
  ]);
  assert.match(human.stdout, /created .*share\.torrent/);

  const json = await runCli(['create', share, '--json', '-o', join(root, 'share2.torrent')]);
  assert.equal(json.code, 0, json.stderr);
  const events = jsonLines(json.stdout);
  const jsonWarnings = events.filter((e) => e.type === 'warning').map((e) => e['message']).sort();
  assert.deepEqual(jsonWarnings, [`clips/late.mp4: ${ADVICE}`, `late.MOV: ${ADVICE}`, `late.m4v: ${ADVICE}`]);
  assert.equal(events.filter((e) => e.type === 'created').length, 1);
  assert.equal(json.stderr, '', '--json keeps stderr clean');

});

test('create: a single MP4 file is checked too; a faststart one is not warned about', { timeout: 60_000 }, async (t) => {
  const v = await testVideos(t);
  if (!v) return;
  const late = await runCli(['create', v.moovAtEnd, '-o', join(root, 'single.torrent')]);
  assert.equal(late.code, 0, late.stderr);
  assert.deepEqual(warningsOf(late.stderr), [`warning: moov-at-end.mp4: ${ADVICE}`]);
  const fast = await runCli(['create', v.faststart, '-o', join(root, 'fast.torrent')]);
  assert.equal(fast.code, 0, fast.stderr);
  assert.deepEqual(warningsOf(fast.stderr), []);
});
