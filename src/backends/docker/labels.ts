/** Labels the CPI puts on everything it creates, so an operator (or a cleanup) can find it. */
export const LABELS = {
  cpi: 'io.bosh.cpi',
  role: 'io.bosh.cpi.role',
  director: 'io.bosh.cpi.director',
  vm: 'io.bosh.cpi.vm',
  agentId: 'io.bosh.cpi.agent-id',
  stemcell: 'io.bosh.cpi.stemcell',
  stemcellTag: 'io.bosh.cpi.tag.',
  network: 'io.bosh.cpi.network',
  createdAt: 'io.bosh.cpi.created-at',
  /** runit or systemd: how the VM's container was started (delete_vm stops systemd first). */
  init: 'io.bosh.cpi.init',
} as const;
