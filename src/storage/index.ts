export { Storage, storageError, type StorageOptions, type CheckStats } from './storage.js';
export { segmentsForRange, fileIndexAt, pieceSpanOfFile, pieceRange, type Segment, type FileExtent } from './file-map.js';
export { FilePool, type OpenMode } from './file-pool.js';
export { encodeResume, decodeResume, loadResumeFile, saveResumeFile, type ResumeData, type FileStamp } from './resume.js';
