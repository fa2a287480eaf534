// The processes tests start (services, the CLI, gen-data) resolve modules as
// they do for a user. pnpm's exec puts its hoisted node_modules on NODE_PATH,
// which vitest's workers inherit; a child started with it would find packages
// a user's process cannot, hiding a wrong import (a FIFO --data once sent a
// module load down that path and passed here while failing for users).
delete process.env.NODE_PATH;
