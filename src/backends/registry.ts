import type { BackendDescriptor } from '../cpi/backend.ts';
import { DOCKER_CONTEXT_OVERRIDABLE, parseDockerProperties } from './docker/config.ts';
import { parseQemuProperties } from './qemu/config.ts';

/**
 * The backends the CPI can run, known by their plugin name. Only the descriptor is loaded for
 * every call; a backend's code is loaded when a method needs it (never for info).
 */
export const BACKENDS: Record<string, BackendDescriptor> = {
  docker: {
    stemcellFormats: ['warden-tar', 'general-tar', 'docker-light', 'warden-light'],
    checkProperties: parseDockerProperties,
    contextOverridable: DOCKER_CONTEXT_OVERRIDABLE,
    load: () => import('./docker/index.ts'),
  },
  qemu: {
    // Kept in step with STEMCELL_FORMATS in qemu/stemcells.ts (not imported: info must stay cheap).
    stemcellFormats: ['openstack-qcow2', 'openstack-raw', 'qemu-qcow2', 'qemu-raw'],
    checkProperties: parseQemuProperties,
    load: () => import('./qemu/index.ts'),
  },
};

export function backendNames(): string[] {
  return Object.keys(BACKENDS);
}
