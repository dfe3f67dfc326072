// Private endpoints of one storage account (blob, queue, table) in the endpoints subnet, each registered in its
// privatelink DNS zone (modules/network.bicep), so that inside the VNet the account's usual host names resolve to them.

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags { *: string }

@description('The storage account.')
param storageAccountName string

@description('The subnet the endpoints take their addresses from.')
param subnetId string

@description('Sub-resources to expose (blob, queue, table), in the order of zoneIds.')
param services string[]

@description('The privatelink DNS zone of each service, in the order of services.')
param zoneIds string[]

resource account 'Microsoft.Storage/storageAccounts@2025-01-01' existing = {
  name: storageAccountName
}

resource endpoints 'Microsoft.Network/privateEndpoints@2024-05-01' = [
  for (service, i) in services: {
    name: 'pe-${storageAccountName}-${service}'
    location: location
    tags: tags
    properties: {
      subnet: {
        id: subnetId
      }
      privateLinkServiceConnections: [
        {
          name: '${storageAccountName}-${service}'
          properties: {
            privateLinkServiceId: account.id
            groupIds: [
              service
            ]
          }
        }
      ]
    }
  }
]

resource zoneGroups 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = [
  for (service, i) in services: {
    parent: endpoints[i]
    name: 'default'
    properties: {
      privateDnsZoneConfigs: [
        {
          name: service
          properties: {
            privateDnsZoneId: zoneIds[i]
          }
        }
      ]
    }
  }
]
