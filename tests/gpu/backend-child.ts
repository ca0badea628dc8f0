// Child process of backend.test.ts: loads a fixture through loadModel (default backend: webgpu),
// generates a few tokens, disposes — and must then exit by itself (nothing of Dawn, the sequences
// or the weights keeping the event loop alive).
import { loadModel } from '../../src/index.js';

const model = await loadModel(process.argv[2]!, { contextLength: 64 });
const session = model.createSession();
const ids: number[] = [];
for await (const t of session.generate([1, 2, 3], { maxTokens: 4, temperature: 0 })) ids.push(t.id);
await model.dispose();
console.log(`backend ${model.info.backend} generated ${ids.join(',')} disposed`);
