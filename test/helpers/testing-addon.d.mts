// Types of testing-addon.mjs (plain JavaScript so that bench/*.mjs can load it too).

/** Where the test addon is looked for: L2E_TESTING_ADDON, else build/Release/testing/l2e_testing.node. */
export function testingAddonPath(): string;
/** The test addon, typed by the caller's view of the functions it needs. */
export function testingAddon<T = Record<string, unknown>>(): T;
