// Post step: save under the key unless it was restored exactly (a cache
// entry is immutable), as actions/cache does.
const core = require('@actions/core');
const cache = require('@actions/cache');

const lines = (name) => core.getInput(name).split('\n').map((s) => s.trim()).filter(Boolean);

(async () => {
  const key = core.getInput('key', { required: true });
  if (core.getState('matched') === key) {
    core.info(`real cache: key ${key} was restored, not saved again`);
    return;
  }
  const id = await cache.saveCache(lines('path'), key);
  core.info(`real cache: saved key=${key} id=${id}`);
// actions/cache only warns when a save fails (a missing path, a key
// another job is saving): the job goes on.
})().catch((e) => core.warning(`real cache save: ${e.message}`));
