export { StreamServer, type StreamFile, type StreamSource, type StreamServerOptions } from './server.js';
export { parseRange, contentRange, MAX_RANGES, type RangeResult } from './range.js';
export {
  mp4MoovPosition, mp4TopLevelBoxes, mp4LayoutFromHead, mediaContainerOf, mediaHeadTailPieces, tailBytes, isMp4Video, HEAD_BYTES,
  type MoovPosition, type MediaContainer, type PieceRange, type ReadAt, type Mp4Box, type Mp4Layout,
} from './media.js';
export { contentTypeOf, isMediaFile } from './content-type.js';
