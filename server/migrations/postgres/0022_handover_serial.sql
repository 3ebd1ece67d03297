-- A device is handed over once: a hand-over looks up the serial number of its device among
-- those recorded (an IMEI is unique already).
CREATE INDEX device_handovers_serial ON device_handovers (serial_number);
