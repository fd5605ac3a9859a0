'use strict';
// Every export throws when used: the benchmarks only use TCP peers.
class Unavailable { constructor() { throw new Error('node-datachannel stub: WebRTC is not available in the benchmarks'); } }
const names = ['PeerConnection', 'DataChannel', 'RtcpReceivingSession', 'Video', 'Audio', 'Track', 'WebSocket', 'WebSocketServer',
  'RTCPeerConnection', 'RTCSessionDescription', 'RTCIceCandidate', 'RTCDataChannel', 'RTCCertificate'];
for (const n of names) module.exports[n] = class extends Unavailable {};
module.exports.initLogger = () => {};
module.exports.cleanup = () => {};
module.exports.preload = () => {};
module.exports.default = module.exports;
