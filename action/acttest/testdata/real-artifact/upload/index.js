// A stand-in for actions/upload-artifact@v4 that does its job with
// GitHub's own library against the runner's artifact service (act's
// server in the tests). It uses @actions/artifact 1.x (the library of
// upload-artifact@v3): act v0.2.89's v4 server refuses the block uploads
// of @actions/artifact 2.x ("Error unauthorized": the signed URL's
// expiry is re-encoded by the Azure client; nektos/act#6021).
const fs = require('fs');
const path = require('path');
const core = require('@actions/core');
const artifact = require('@actions/artifact');

async function main() {
  const name = core.getInput('name', { required: true });
  const file = core.getInput('path', { required: true });
  if (!fs.existsSync(file)) {
    const msg = `no file at ${file}`;
    if (core.getInput('if-no-files-found') === 'error') throw new Error(msg);
    core.warning(msg);
    return;
  }
  const res = await artifact.create().uploadArtifact(name, [file], path.dirname(file));
  if (res.failedItems.length > 0) throw new Error(`failed to upload ${res.failedItems.join(', ')}`);
  console.log(`real artifact: uploaded ${name} size=${res.size}`);
}
main().catch((e) => core.setFailed(e.message));
