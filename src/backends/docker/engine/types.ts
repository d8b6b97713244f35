/** The parts of Engine API objects the CPI reads. */
export interface ContainerSummary {
  Id: string;
  Names: string[];
  Image: string;
  ImageID: string;
  Labels: Record<string, string>;
  State: string;
  HostConfig?: { NetworkMode?: string };
  NetworkSettings?: { Networks?: Record<string, EndpointSettings> | null };
}

export interface EndpointSettings {
  IPAddress?: string;
  IPPrefixLen?: number;
  Gateway?: string;
  MacAddress?: string;
  NetworkID?: string;
}

export interface ContainerInspect {
  Id: string;
  Name: string;
  Image: string;
  State: { Status: string; Running: boolean; Pid: number; StartedAt: string };
  Config: { Labels: Record<string, string> | null; Image: string };
  HostConfig: Record<string, unknown>;
  Mounts: Array<{ Type: string; Name?: string; Source: string; Destination: string }>;
  NetworkSettings: { Networks: Record<string, EndpointSettings> };
}

export interface ImageInspect {
  Id: string;
  RepoTags: string[] | null;
  Config: { Labels: Record<string, string> | null } | null;
}

export interface NetworkInspect {
  Id: string;
  Name: string;
  Driver: string;
  Labels: Record<string, string> | null;
  IPAM: { Config: Array<{ Subnet?: string; Gateway?: string }> | null };
  Containers?: Record<string, unknown> | null;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}
