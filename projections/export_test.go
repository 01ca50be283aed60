package projections

// VersionLockKey is the advisory lock held by the process running a
// projection version (tests stand in for another process with it).
var VersionLockKey = versionLockKey
