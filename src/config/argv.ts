/**
 * Finds the config file path in the forms real CPI wrappers use:
 * `cpi /path/cpi.json`, `cpi -configPath=/path`, `cpi --configPath /path`, `cpi --config /path`.
 */
export function configPathFromArgv(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    const flag = /^--?(configPath|config|c)(?:=(.*))?$/.exec(a);
    if (flag) return flag[2] !== undefined ? flag[2] : argv[i + 1];
    if (!a.startsWith('-')) return a;
  }
  return process.env.BOSH_CPI_CONFIG || undefined;
}
