"""``make run``'s whole stack: the local Functions host (local_host/) with stand-ins for the Azure
services around it, Azurite for Blob Storage and the storage account's Event Grid subscription."""
