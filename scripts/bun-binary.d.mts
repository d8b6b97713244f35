/** The Bun binary of the `bun` npm package (what `npm run build` compiles with). */
export function bunBinary(): string;
