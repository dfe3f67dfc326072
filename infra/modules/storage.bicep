// A storage account with its blob containers and queues. main.bicep deploys it twice: the data account
// (the classifier's containers and queues) and the host account (the Functions host's own storage,
// AzureWebJobsStorage over managed identity, and the Flex Consumption deployment container), so that no
// role the host needs reaches the classifier's data. Role assignments live with their principals
// (functionApp.bicep for the host account, storageDataRoles.bicep per container and queue for the data).
// Modelled on the Azure Verified Module defaults (avm/res/storage/storage-account): no shared
// keys, no anonymous blob access, TLS 1.2, HTTPS only, Entra ID by default in the portal.

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags { *: string }

@description('Storage account name (3-24 lower-case letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Storage SKU.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
])
param skuName string = 'Standard_LRS'

@description('Blob containers to create.')
param containerNames string[]

@description('Storage queues to create.')
param queueNames string[] = []

@description('Days a deleted blob or container can be restored.')
@minValue(1)
@maxValue(365)
param deleteRetentionDays int = 7

@description('Enabled: the public endpoint answers (Entra ID only). Disabled: only private endpoints (main.bicep privateNetworking), unless allowedIpRanges names addresses.')
@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string = 'Enabled'

@description('With publicNetworkAccess Disabled: public addresses or CIDR ranges still let through the public endpoint (an operator\'s workstation). Empty: none.')
param allowedIpRanges string[] = []

// Private with named addresses: the public endpoint stays on but denies everyone else.
var publicEndpointOpen = publicNetworkAccess == 'Enabled'
var effectivePublicNetworkAccess = publicEndpointOpen || !empty(allowedIpRanges) ? 'Enabled' : 'Disabled'

resource account 'Microsoft.Storage/storageAccounts@2025-01-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    // By default Flex Consumption without VNet integration and Container Apps jobs reach the account over
    // its public endpoint; access is by Entra ID only (shared keys are off). With private networking, over
    // private endpoints only (and the allowed addresses).
    publicNetworkAccess: effectivePublicNetworkAccess
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: publicEndpointOpen ? 'Allow' : 'Deny'
      ipRules: [
        for range in (publicEndpointOpen ? [] : allowedIpRanges): {
          action: 'Allow'
          value: range
        }
      ]
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: false
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2025-01-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: deleteRetentionDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: deleteRetentionDays
    }
  }
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-01-01' = [
  for containerName in containerNames: {
    parent: blobService
    name: containerName
    properties: {
      publicAccess: 'None'
    }
  }
]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2025-01-01' = {
  parent: account
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2025-01-01' = [
  for queueName in queueNames: {
    parent: queueService
    name: queueName
  }
]

output id string = account.id
output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
