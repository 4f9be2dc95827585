// Upload one file to the portal with tus-js-client, the most widely used browser tus client.
// Usage: node tus_upload.mjs ENDPOINT TOKEN CASE_ID FILE CHUNK_SIZE [STOP_AFTER_BYTES | RESUME_URL]
// Prints "PARTIAL <url> <offset>" when it stopped on purpose, "DONE <url>" once the server's
// completion job has ingested the file (GET <url> polled until its status is complete).
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { Upload } from "tus-js-client";

const [endpoint, token, caseId, file, chunkSize, extra] = process.argv.slice(2);
const data = readFileSync(file);
const stopAfter = extra && /^\d+$/.test(extra) ? Number(extra) : null;
const resumeUrl = extra && !stopAfter ? extra : null;

const upload = new Upload(data, {
  endpoint,
  uploadUrl: resumeUrl,
  chunkSize: Number(chunkSize),
  headers: { Authorization: `Bearer ${token}` },
  metadata: { case_id: caseId, filename: basename(file) },
  retryDelays: [0, 500, 1000],
  storeFingerprintForResuming: false,
  onChunkComplete(_chunk, accepted) {
    if (stopAfter !== null && accepted >= stopAfter) {
      upload.abort().then(() => {
        console.log(`PARTIAL ${upload.url} ${accepted}`);
        process.exit(0);
      });
    }
  },
  onError(error) {
    console.error(`ERROR ${error}`);
    process.exit(1);
  },
  onSuccess() {
    outcome(upload.url).then((status) => {
      if (status !== "complete") {
        console.error(`ERROR the upload ended ${status}`);
        process.exit(1);
      }
      console.log(`DONE ${upload.url}`);
    });
  },
});
upload.start();

async function outcome(url) {
  const deadline = Date.now() + 60000;
  while (Date.now() < deadline) {
    const answer = await fetch(url, { headers: { Authorization: `Bearer ${token}` } });
    const { status } = await answer.json();
    if (status === "complete" || status === "failed") { return status; }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return "still assembling after a minute";
}
