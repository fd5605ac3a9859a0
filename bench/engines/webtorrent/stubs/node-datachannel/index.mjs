// Every class throws when constructed: the benchmarks only use TCP peers.
class Unavailable { constructor() { throw new Error('node-datachannel stub: WebRTC is not available in the benchmarks'); } }
export class PeerConnection extends Unavailable {}
export class DataChannel extends Unavailable {}
export class RtcpReceivingSession extends Unavailable {}
export class Video extends Unavailable {}
export class Audio extends Unavailable {}
export class Track extends Unavailable {}
export class WebSocket extends Unavailable {}
export class WebSocketServer extends Unavailable {}
export function initLogger() {}
export function cleanup() {}
export function preload() {}
export default { PeerConnection, DataChannel, RtcpReceivingSession, Video, Audio, Track, WebSocket, WebSocketServer, initLogger, cleanup, preload };
