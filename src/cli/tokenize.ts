// moet tokenize -m FILE (-p TEXT | -f FILE) [--ids]: like llama.cpp's llama-tokenize.
import { readFile } from 'node:fs/promises';
import { openGGUF } from '../../gguf/reader.js';
import { Tokenizer } from '../tokenizer/index.js';
import { COMMON_OPTIONS, MODEL_TEXT_OPTIONS, parse, requireModelAndText, type CliIO } from './util.js';

export const TOKENIZE_HELP = `usage: moet tokenize -m FILE (-p TEXT | -f TEXTFILE) [--ids] [--no-parse-special] [--no-bos]

Tokenizes text with the model's vocabulary (reads only the GGUF header), like llama-tokenize.
Prints one "id -> 'piece'" line per token, or with --ids a list [id, id, ...].

options:
  -m, --model FILE       GGUF file
  -p, --prompt TEXT      text to tokenize
  -f, --file TEXTFILE    read the text from a file
  --ids                  print only the ids, as [1, 2, 3]
  --no-parse-special     treat control tokens written in the text (<|im_start|>) as plain text
  --no-bos               never prepend BOS (by default the GGUF's add_bos_token decides)
  -h, --help             this help
  --verbose              print stack traces on errors
`;

/**
 * @throws UsageError for bad arguments; GGUFFormatError / fs errors for a bad file
 */
export async function tokenizeCommand(argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parse('tokenize', {
    args: argv,
    allowPositionals: false,
    options: {
      ...COMMON_OPTIONS,
      ...MODEL_TEXT_OPTIONS,
      ids: { type: 'boolean' },
      'no-parse-special': { type: 'boolean' },
      'no-bos': { type: 'boolean' },
    },
  });
  void positionals;
  if (values.help) {
    io.stdout.write(TOKENIZE_HELP);
    return 0;
  }
  const modelPath = requireModelAndText('tokenize', values);
  const text = values.prompt ?? (await readFile(values.file!, 'utf8'));
  const file = await openGGUF(modelPath);
  let tokenizer: Tokenizer;
  try {
    tokenizer = Tokenizer.fromGGUF(file.metadata);
  } finally {
    await file.close();
  }
  const ids = tokenizer.encode(text, {
    special: !values['no-parse-special'],
    addBos: values['no-bos'] ? false : tokenizer.addBos,
  });
  if (values.ids) {
    io.stdout.write(`[${ids.join(', ')}]\n`);
    return 0;
  }
  for (const id of ids) {
    const piece = tokenizer.decode([id], { special: true, keepLeadingSpace: true });
    io.stdout.write(`${String(id).padStart(6)} -> '${piece}'\n`);
  }
  return 0;
}
