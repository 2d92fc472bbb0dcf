// A stand-in for actions/download-artifact@v4 on GitHub's own library
// (@actions/artifact 1.x; see upload/index.js for why not 2.x): every
// artifact of the run whose name matches the pattern, each into
// PATH/NAME, as download-artifact@v4 lays them out.
const fs = require('fs');
const path = require('path');
const core = require('@actions/core');
const artifact = require('@actions/artifact');

async function main() {
  const pattern = core.getInput('pattern', { required: true });
  const dest = core.getInput('path', { required: true });
  const re = new RegExp('^' + pattern.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$');
  const all = await artifact.create().downloadAllArtifacts(dest);
  let n = 0;
  for (const a of all) {
    if (re.test(a.artifactName)) {
      n++;
    } else {
      fs.rmSync(path.join(dest, a.artifactName), { recursive: true, force: true });
    }
  }
  console.log(`real artifact: downloaded ${n} artifacts matching ${pattern}`);
}
main().catch((e) => core.setFailed(e.message));
