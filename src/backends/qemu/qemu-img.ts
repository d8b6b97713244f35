import { runChecked } from '../../util/command.ts';

/**
 * qemu-img, always with an explicit format: letting it probe would let a raw image that starts
 * with a qcow2 header name a backing file anywhere on the host.
 */
export type ImageFormat = 'qcow2' | 'raw';

export interface ImageInfo {
  format: string;
  virtualSize: number;
  actualSize: number | undefined;
  backingFilename: string | undefined;
  dataFile: string | undefined;
}

const TIMEOUT_MS = 60 * 60 * 1000;

export class QemuImg {
  constructor(private readonly binary: string) {}

  async info(path: string, format: ImageFormat): Promise<ImageInfo> {
    // -U: read without taking QEMU's image lock, so a disk that a VM holds can be inspected.
    const res = await runChecked(this.binary, ['info', '-U', '--output=json', '-f', format, path], {
      timeoutMs: 60_000,
    });
    const info = JSON.parse(res.stdout) as Record<string, unknown>;
    const specific = (info['format-specific'] as { data?: Record<string, unknown> } | undefined)?.data;
    return {
      format: String(info.format),
      virtualSize: Number(info['virtual-size']),
      actualSize: typeof info['actual-size'] === 'number' ? info['actual-size'] : undefined,
      backingFilename: typeof info['backing-filename'] === 'string' ? info['backing-filename'] : undefined,
      dataFile: typeof specific?.['data-file'] === 'string' ? (specific['data-file'] as string) : undefined,
    };
  }

  async create(
    path: string,
    sizeBytes: number | undefined,
    opts: { backing?: string; backingFormat?: ImageFormat } = {},
  ) {
    const args = ['create', '-q', '-f', 'qcow2'];
    if (opts.backing) args.push('-b', opts.backing, '-F', opts.backingFormat ?? 'qcow2');
    args.push(path);
    if (sizeBytes !== undefined) args.push(String(sizeBytes));
    await runChecked(this.binary, args, { timeoutMs: 60_000 });
  }

  async convert(
    source: string,
    sourceFormat: ImageFormat,
    target: string,
    targetFormat: ImageFormat,
  ): Promise<void> {
    await runChecked(this.binary, ['convert', '-q', '-f', sourceFormat, '-O', targetFormat, source, target], {
      timeoutMs: TIMEOUT_MS,
    });
  }

  async resize(path: string, sizeBytes: number): Promise<void> {
    await runChecked(this.binary, ['resize', '-q', '-f', 'qcow2', path, String(sizeBytes)], {
      timeoutMs: 60_000,
    });
  }

  /** Copies the first `bytes` of an image's content (as the guest sees it) into a raw file. */
  async head(path: string, format: ImageFormat, target: string, bytes: number): Promise<void> {
    await runChecked(
      this.binary,
      [
        'dd',
        '-U',
        '-f',
        format,
        '-O',
        'raw',
        'bs=4096',
        `count=${Math.ceil(bytes / 4096)}`,
        `if=${path}`,
        `of=${target}`,
      ],
      { timeoutMs: 60_000 },
    );
  }
}
