-- The stream receiving a batch: a token of its own, so that only that stream stages records
-- under the batch id and applying checks that what is staged is what it sent. Whether the
-- stream is still alive is told by its claim (a lock it holds), not by this column.
ALTER TABLE household_batches ADD COLUMN receiver TEXT;
