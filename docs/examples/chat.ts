// A multi-turn chat with moet's library API: the model's chat template, Qwen3's thinking streamed
// apart from the answer, and the KV cache reused from one turn to the next.
//
// Run it from the repository (the example imports the package by its name, which resolves to the
// build in dist/):
//
//   npm run build
//   npx tsx docs/examples/chat.ts Qwen3-30B-A3B-Q4_K_M.gguf "What is a mixture of experts?" "Why is it fast?"
//
// Options: --no-think (answer without thinking), --cpu (the CPU reference backend, no GPU needed).
// With no questions it asks two of its own. Without a real model at hand, `node dist/src/cli/main.js
// demo --keep` prints the path of a tiny random-weight model to try it on (its answers are gibberish).
import { AbortError, loadModel, type ChatMessage } from 'moet';

const args = process.argv.slice(2);
const flags = new Set(args.filter((a) => a.startsWith('--')));
const [modelPath, ...questions] = args.filter((a) => !a.startsWith('--'));
if (!modelPath) {
  console.error('usage: npx tsx docs/examples/chat.ts MODEL.gguf [--no-think] [--cpu] [QUESTION ...]');
  process.exit(1);
}
if (questions.length === 0) questions.push('Name three planets, briefly.', 'Which of them is the largest?');

const dim = (s: string) => (process.stdout.isTTY ? `\x1b[2m${s}\x1b[22m` : s);

const model = await loadModel(modelPath, {
  backend: flags.has('--cpu') ? 'cpu' : undefined,
  contextLength: 4096,
  onProgress: (f) => process.stderr.write(`\rloading ${(f * 100).toFixed(0)}%`),
});
process.stderr.write(`\r${model.info.name ?? modelPath} (${model.info.architecture}, ${model.info.backend})\n`);

// Ctrl-C stops the current answer
const controller = new AbortController();
process.once('SIGINT', () => controller.abort());

const session = model.createSession();
const messages: ChatMessage[] = [{ role: 'system', content: 'You are a concise assistant.' }];
try {
  for (const question of questions) {
    console.log(`\n> ${question}`);
    messages.push({ role: 'user', content: question });
    // Qwen3's recommended sampling (thinking: temp 0.6, top-p 0.95; otherwise 0.7, 0.8; top-k 20, min-p 0)
    const thinking = !flags.has('--no-think');
    const turn = session.chat(messages, {
      enableThinking: thinking,
      temperature: thinking ? 0.6 : 0.7,
      topP: thinking ? 0.95 : 0.8,
      topK: 20,
      minP: 0,
      maxTokens: 1024,
      signal: controller.signal,
    });
    let kind: 'thinking' | 'content' | null = null;
    // iterate by hand to get the generator's return value (a ChatResult) at the end
    for (let r = await turn.next(); ; r = await turn.next()) {
      if (r.done) {
        const { content, cachedTokens, promptTokens, timings } = r.value;
        messages.push({ role: 'assistant', content });
        const speed = timings.genMs > 0 ? (1000 * timings.generatedTokens) / timings.genMs : 0;
        console.error(dim(`\n[${cachedTokens}/${promptTokens} prompt tokens reused, ${timings.generatedTokens} generated, ${speed.toFixed(1)} tokens/s]`));
        break;
      }
      const chunk = r.value;
      if (kind === 'thinking' && chunk.kind === 'content') process.stdout.write('\n\n');
      kind = chunk.kind;
      process.stdout.write(chunk.kind === 'thinking' ? dim(chunk.text) : chunk.text);
    }
  }
} catch (e) {
  if (!(e instanceof AbortError)) throw e;
  console.error('\n[stopped]');
} finally {
  await model.dispose();
}
