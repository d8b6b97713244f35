/** Runs `fn` over `items`, at most `width` at a time. */
export async function pool<T>(
  items: T[],
  width: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
}
