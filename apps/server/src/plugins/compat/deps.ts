import type { Api } from '@smartspace/api';

/** What the compatible endpoints use of the API: its wiring, nothing else. */
export type Deps = Api['deps'];
