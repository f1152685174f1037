// Run by tests/export/test_typescript_wskit.py under Bun: `bun zod_samples.ts MODULE SAMPLES`.
// MODULE is a `wskit types --zod` output, SAMPLES a JSON list of {type, payload}; prints, for
// each sample, whether the WS-Kit message() of its type accepts the frame carrying it.
declare const process: { argv: string[] };
declare const Bun: { file(path: string): { json(): Promise<unknown> } };

type Sample = { type: string; payload: unknown };
type Checker = { safeParse(value: unknown): { success: boolean } };

const module = (await import(process.argv[2])) as { MESSAGES: Record<string, Checker> };
const samples = (await Bun.file(process.argv[3]).json()) as Sample[];
const verdicts = samples.map(({ type, payload }) => {
  const schema = module.MESSAGES[type];
  if (schema === undefined) throw new Error(`no message ${type} in ${process.argv[2]}`);
  return schema.safeParse({ type, meta: { timestamp: 1 }, payload }).success;
});
console.log(JSON.stringify(verdicts));
export {};
