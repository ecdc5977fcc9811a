-- The gateway's toggle store lives beside, not inside, the legacy database the bridge reads.
CREATE DATABASE fig_control;
