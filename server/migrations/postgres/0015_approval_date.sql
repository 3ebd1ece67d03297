-- The day the People's Committee approved a device list: the date of its approving decision,
-- which may be before the day the approval is recorded in the hub. Hand-overs are dated from
-- it, and statistics count the list's places from it. Lists approved before this column
-- existed take the day (Vietnam's, UTC+7) their approval was recorded.
ALTER TABLE device_allocations ADD COLUMN approved_on DATE;
UPDATE device_allocations SET approved_on = ((decided_at AT TIME ZONE 'UTC') + INTERVAL '7 hours')::date
WHERE status = 'APPROVED';
