// Restore step: the real @actions/cache restoreCache against act's cache
// server. The key it restored goes to the post step through state.
const core = require('@actions/core');
const cache = require('@actions/cache');

const lines = (name) => core.getInput(name).split('\n').map((s) => s.trim()).filter(Boolean);

(async () => {
  const key = core.getInput('key', { required: true });
  const matched = await cache.restoreCache(lines('path'), key, lines('restore-keys'));
  core.info(`real cache: restore key=${key} matched=${matched || 'none'}`);
  core.saveState('matched', matched || '');
  core.setOutput('cache-hit', String(matched === key));
})().catch((e) => core.setFailed(`real cache restore: ${e.message}`));
