// Registered on the builder by the module that fills this file.
export {};
