// The consortium admin of compose.yaml, automated: creates the federation (three sites, the
// honest-but-curious threshold: a round survives one of them dropping), writes one-time enrollment tokens for the agents,
// approves them as they enroll and starts training. Idempotent: a restart finds what exists.
import { writeFileSync } from 'node:fs';

const url = process.env.FEDSYNTH_URL;
const token = process.env.FEDSYNTH_TOKEN;
const sites = (process.env.SITES ?? '').split(/\s+/).filter(Boolean);
async function api(method, path, body) {
  const res = await fetch(url + path, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${json.code} ${json.message}`);
  return json;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let fed = (await api('GET', '/api/federations')).find((f) => f.name === 'compose-demo');
if (!fed) {
  fed = await api('POST', '/api/federations', {
    name: 'compose-demo',
    modelConfig: { size: 32, channels: [16, 32, 64], numResBlocks: 1 },
    plan: { localSteps: 40, batchSize: 8, lr: 1e-3, minSites: 3, waitSeconds: 600 },
    secagg: { threatModel: 'honest-but-curious', clip: 0.1 },
  });
}
const enrolled = new Set((await api('GET', `/api/federations/${fed.id}/sites`)).map((s) => s.name));
for (const name of sites) {
  if (enrolled.has(name)) continue;
  const { token: t } = await api('POST', `/api/federations/${fed.id}/enrollment-tokens`, { siteName: name });
  writeFileSync(`/shared/${name}.token`, t, { mode: 0o644 });
  console.log(`enrollment token for ${name} written`);
}
for (;;) {
  const list = await api('GET', `/api/federations/${fed.id}/sites`);
  for (const s of list.filter((x) => x.status === 'pending')) {
    await api('POST', `/api/sites/${s.id}/approve`);
    console.log(`approved ${s.name}`);
  }
  if (list.filter((x) => x.status === 'approved' || x.status === 'pending').length >= sites.length) break;
  await sleep(2000);
}
if (fed.status === 'created') await api('POST', `/api/federations/${fed.id}/start`);
console.log(`federation ${fed.name} running with ${sites.length} sites`);
