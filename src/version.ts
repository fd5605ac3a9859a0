/** Shoal's version: its own module so that `shoal --version` and `shoal tracker` do not load the engine to print it. */
export const VERSION = '0.1.0';
