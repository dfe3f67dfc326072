// The private network of `privateNetworking` (main.bicep): a VNet with three subnets, and the private DNS zones the
// storage accounts' private endpoints register in.
//   snet-functions   Flex Consumption VNet integration (delegated to Microsoft.App/environments): the app's outbound
//                    traffic (storage, blob trigger queue, model reads) enters the VNet here.
//   snet-endpoints   private endpoints of both storage accounts (blob, queue, table).
//   snet-jobs        the Container Apps environment of the training job (workload profiles, delegated to
//                    Microsoft.App/environments, at least /27).
// Nothing here was deployed from the machine that wrote it (docs/deploy.md, "Private networking").

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags { *: string }

@description('Virtual network name.')
param name string

@description('Address space of the VNet; the three subnets are carved from its first /20 (a /16 by default).')
param addressPrefix string = '10.42.0.0/16'

var functionsSubnetName = 'snet-functions'
var endpointsSubnetName = 'snet-endpoints'
var jobsSubnetName = 'snet-jobs'
// privatelink.<service>.core.windows.net (the storage suffix of the cloud this deploys to).
var storageServices = [
  'blob'
  'queue'
  'table'
]

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: functionsSubnetName
        properties: {
          addressPrefix: cidrSubnet(addressPrefix, 24, 0)
          delegations: [
            {
              name: 'flex-consumption'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
        }
      }
      {
        name: endpointsSubnetName
        properties: {
          addressPrefix: cidrSubnet(addressPrefix, 24, 1)
          privateEndpointNetworkPolicies: 'Disabled'
        }
      }
      {
        name: jobsSubnetName
        properties: {
          addressPrefix: cidrSubnet(addressPrefix, 23, 1)
          delegations: [
            {
              name: 'container-apps'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
        }
      }
    ]
  }
}

resource zones 'Microsoft.Network/privateDnsZones@2024-06-01' = [
  for service in storageServices: {
    name: 'privatelink.${service}.${environment().suffixes.storage}'
    location: 'global'
    tags: tags
  }
]

resource zoneLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2024-06-01' = [
  for (service, i) in storageServices: {
    parent: zones[i]
    name: '${name}-link'
    location: 'global'
    tags: tags
    properties: {
      registrationEnabled: false
      virtualNetwork: {
        id: vnet.id
      }
    }
  }
]

output functionsSubnetId string = resourceId('Microsoft.Network/virtualNetworks/subnets', vnet.name, functionsSubnetName)
output endpointsSubnetId string = resourceId('Microsoft.Network/virtualNetworks/subnets', vnet.name, endpointsSubnetName)
output jobsSubnetId string = resourceId('Microsoft.Network/virtualNetworks/subnets', vnet.name, jobsSubnetName)
output storageServices string[] = storageServices
output storageZoneIds string[] = [for (service, i) in storageServices: zones[i].id]
