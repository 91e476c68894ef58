export interface WorkloadPlugin {
  name: string;
}
export interface WorkloadSession {
  stop(): void;
}
