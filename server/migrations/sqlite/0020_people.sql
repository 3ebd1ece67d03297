-- The person a member's certificate names (its subject's common name, for a certificate
-- whose subject carries a surname or given name), kept beside the organisation: in the
-- audit record (part of its bytes, `telesub-audit-v3`) and in each decision a person made.
ALTER TABLE audit_log ADD COLUMN person TEXT;
ALTER TABLE monthly_updates ADD COLUMN decided_by_person TEXT;
ALTER TABLE device_allocations ADD COLUMN decided_by_person TEXT;
ALTER TABLE device_handovers ADD COLUMN recorded_by_person TEXT;
