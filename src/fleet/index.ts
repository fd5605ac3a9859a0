/** The fleet: a controller, an agent on every host, a publisher (see README "Fleet rollouts"). */
export { FleetController, type ControllerOptions } from './controller.js';
export { FleetAgent, type AgentOptions } from './agent.js';
export { publish, defaultVersion, type PublishOptions, type PublishResult } from './publisher.js';
export { ControllerApi, EventStream, ApiError } from './api-client.js';
export { generateKeyPair, loadPrivateKey, parsePublicKey, publicKeyOf, signManifest, verifyManifest } from './signing.js';
export { readTokens, readToken, ensureTokenFile } from './auth.js';
export { channelView, kumarRossFloor } from './rollout.js';
export { planPrune, type HeldRelease } from './disk.js';
export type * from './types.js';
