// The globals componentize-js (StarlingMonkey) provides that this project
// uses, declared here instead of the DOM library: fetch(), timers and the
// console are disabled by build.sh, so they are left undeclared on purpose.
declare class TextEncoder {
  encode(input?: string): Uint8Array;
}
declare class TextDecoder {
  constructor(label?: string);
  decode(input?: Uint8Array, options?: { stream?: boolean }): string;
}
declare class URL {
  constructor(url: string, base?: string);
  readonly protocol: string;
  readonly host: string;
  readonly pathname: string;
  readonly search: string;
}
