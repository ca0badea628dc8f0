// Writes an edited copy of a GGUF file: its metadata (a map by key, in file order) and its tensor
// list (data read lazily from the source) handed to `edit`, which may change, add or remove entries.
// The malformed-file tests of every family build their broken files with it.
import { openGGUF } from '../../gguf/reader.js';
import type { GGUFMetadataEntry } from '../../gguf/types.js';
import { writeGGUF, type GGUFWriteTensor } from '../../gguf/writer.js';

export type GGUFEdit = (metadata: Map<string, GGUFMetadataEntry>, tensors: GGUFWriteTensor[]) => void;

/** Writes `out` as `src` changed by `edit`; returns `out`. */
export async function rewriteGGUF(src: string, out: string, edit: GGUFEdit): Promise<string> {
  const f = await openGGUF(src);
  try {
    const metadata = new Map([...f.metadata.values()].map((e) => [e.key, { ...e }]));
    const tensors: GGUFWriteTensor[] = f.tensors.map((t) => ({ name: t.name, type: t.type, shape: [...t.shape], data: () => f.readTensor(t) }));
    edit(metadata, tensors);
    await writeGGUF(out, [...metadata.values()], tensors);
    return out;
  } finally {
    await f.close();
  }
}

/** Removes the tensor `name` from the list (it must be there). */
export function dropTensor(tensors: GGUFWriteTensor[], name: string): void {
  const i = tensors.findIndex((t) => t.name === name);
  if (i < 0) throw new Error(`no tensor ${name} to drop`);
  tensors.splice(i, 1);
}
