// ServerlessClassifier: everything it needs in one resource group.
//   data storage (identity only) ── Functions app on Flex Consumption (serves the model; blob trigger via Event Grid)
//                               └── Container Apps job on a serverless GPU (TrainJob: trains and publishes models)
//   host storage (identity only): the Functions host's AzureWebJobsStorage and the deployment package, nothing else.
//   Data-plane roles on the data account are per container and per queue (modules/storageDataRoles.bicep).
//   Application Insights + Log Analytics, a container registry for the TrainJob image.
// The Event Grid subscription that feeds the blob trigger is a separate template (infra/eventgrid.bicep),
// deployed once the app's code is published and answering: this deployment rewrites the site and its
// app settings (the app restarts), and Event Grid's validation handshake against a restarting app fails.
// Deploy: docs/deploy.md. Validated with `bicep build` and `bicep lint` (tests/Infra.Tests).
targetScope = 'resourceGroup'

@description('Short name of this deployment (e.g. classifier-dev); part of every resource name.')
@minLength(2)
@maxLength(20)
param environmentName string

@description('Azure region for every resource. Pick one with Flex Consumption and serverless GPUs for Container Apps.')
param location string = resourceGroup().location

@description('Flex Consumption memory per instance in MB.')
@allowed([
  512
  2048
  4096
])
param functionInstanceMemoryMB int = 2048

@description('Most instances the Functions app scales out to.')
@minValue(1)
@maxValue(1000)
param functionMaximumInstanceCount int = 40

@description('Serverless GPU workload profile type for training.')
@allowed([
  'Consumption-GPU-NC8as-T4'
  'Consumption-GPU-NC24-A100'
])
param gpuWorkloadProfileType string = 'Consumption-GPU-NC8as-T4'

@description('Container registry tier. Basic: cheapest; every training run pulls the whole CUDA image (several GB) before it starts. Premium: about ten times the daily charge, and artifact streaming (enabled per repository after the first push, docs/deploy.md), which starts the job while the image streams in.')
@allowed([
  'Basic'
  'Standard'
  'Premium'
])
param containerRegistrySku string = 'Basic'

@description('vCPUs for the training container (T4 profile: up to 8).')
param trainJobCpu int = 8

@description('Memory for the training container (T4 profile: up to 56Gi).')
param trainJobMemory string = '56Gi'

@description('Tag of <registry>/serverless-classifier-trainjob to run. Empty (first deployment, before `az acr build`): a public placeholder image that must not be started.')
param trainJobImageTag string = ''

@description('TrainJob CLI arguments. No --int8-weight-bits: auto on a job CPU with VNNI packages an 8-bit int8 graph for Functions instances with VNNI and a checked 7-bit (or the fp32) graph for those with AVX2 alone, each instance serving the one right for its CPU; on a job CPU without VNNI, one 7-bit graph, right on any x86 CPU.')
param trainJobArgs string[] = [
  'train'
  '--data'
  'training'
  '--output'
  '/tmp/model'
  '--mode'
  'head'
  '--publish'
  '--device'
  'auto'
  '--checkpoints'
  'checkpoints/train'
]

@description('Longest a training run may take, in seconds.')
@minValue(60)
param trainJobTimeoutSeconds int = 14400

@description('Application (client) id of the Entra app registration for the review page\'s sign-in (app roles Reviewer and Approver; docs/deploy.md, "Review sign-in"). Empty: review sign-in off (the review API answers 503); everything else works.')
param reviewSignInClientId string = ''

@description('Optional object id of the person or group who uploads training data and images, reviews from the command line and promotes models (Storage Blob Data Contributor on images, training, review and models; Reader on predictions and jobs; docs/deploy.md). Empty: none.')
param operatorPrincipalId string = ''

@description('Principal type of operatorPrincipalId.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param operatorPrincipalType string = 'User'

@description('Custom Vision-compatible API: the projects the app answers for, <project id>=<model name> pairs separated by commas (README, "Moving from Custom Vision"). Empty: none.')
param customVisionProjects string = ''

@description('Key Vault in this resource group (RBAC authorization) whose secret customVisionKeySecretName holds the Custom Vision prediction key(s), comma-separated during a rotation: the app setting is a Key Vault reference, and the app reads that secret alone. Empty: customVisionPredictionKeys.')
param customVisionKeyVaultName string = ''

@description('The secret in customVisionKeyVaultName.')
param customVisionKeySecretName string = 'customvision-prediction-keys'

@secure()
@description('The Custom Vision prediction key(s) as a plain app setting, when no Key Vault is named. Both empty: every Custom Vision call answers 401.')
param customVisionPredictionKeys string = ''

@description('Private networking (docs/deploy.md, "Private networking"): a VNet; both storage accounts reachable only through private endpoints (blob, queue, table); the Functions app and the training job\'s environment integrated into the VNet. The app\'s HTTP routes, the registry and monitoring stay public. Off: public endpoints with Entra ID only.')
param privateNetworking bool = false

@description('With privateNetworking: public addresses or CIDR ranges (an operator\'s workstation, a CI runner) still let through to the data account\'s public endpoint, for uploads and trainjob commands from outside the VNet. Empty: none.')
param operatorIpRanges string[] = []

@description('With privateNetworking: the VNet\'s address space.')
param virtualNetworkAddressPrefix string = '10.42.0.0/16'

@description('Tags for every resource.')
param tags { *: string } = {}

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
// Lower case: Container Apps and several other resource names accept nothing else.
var nameStem = toLower(environmentName)
var allTags = union(tags, { 'azd-env-name': environmentName, application: 'serverless-classifier' })

// Container names: the storage contract of docs/architecture.md, plus the Flex Consumption package container.
var imagesContainerName = 'images'
var predictionsContainerName = 'predictions'
var modelsContainerName = 'models'
var trainingContainerName = 'training'
// Named models' training data, <model>/<label>/<file>: approved review labels of a named model's uploads (never in 'training').
var namedTrainingContainerName = 'training-models'
var jobsContainerName = 'jobs'
// The review queue and staged labels (review page, trainjob review).
var reviewContainerName = 'review'
// Head-mode features kept between training runs (train --feature-cache), written by the features shards too.
var featuresContainerName = 'features'
// The training job's checkpoint, kept after every epoch so that a retried replica continues the run (train --checkpoints).
var checkpointsContainerName = 'checkpoints'
// The shard queue of `trainjob classify --container --distributed`, consumed by the app's ClassifyShard.
var shardQueueName = 'classify-shards'
// Where the host's queue trigger moves a shard message after maxDequeueCount deliveries (<queue>-poison), and where the
// blob trigger puts a poison blob's message: both on the trigger's connection (ClassifierStorage), so on the data account.
// Created here so that the app needs only to send to them, not to create queues. The host names the first <queue>-poison.
var shardPoisonQueueName = 'classify-shards-poison'
var blobTriggerPoisonQueueName = 'webjobs-blobtrigger-poison'
var deploymentContainerName = 'app-package-${resourceToken}'

// Built-in role definition ids (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var blobReader = '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1' // Storage Blob Data Reader
var blobContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe' // Storage Blob Data Contributor
var queueReader = '19e7f393-937e-4f77-808e-94535e297925' // Storage Queue Data Reader
var queueProcessor = '8a0f0c08-91a1-4084-bc3d-661d67233fed' // Storage Queue Data Message Processor
var queueSender = 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a' // Storage Queue Data Message Sender

// Names are computed here, not taken from module outputs, so What-If can predict every resource.
var storageAccountName = 'st${resourceToken}'
// The host's own account: 'sth' + the 13-character token, within the 24-character limit.
var hostStorageAccountName = 'sth${resourceToken}'
var appInsightsName = 'appi-${nameStem}-${resourceToken}'
var functionAppName = 'func-${nameStem}-${resourceToken}'
var systemTopicName = 'evgt-${nameStem}-${resourceToken}'
var registryName = 'cr${resourceToken}'
var trainJobIdentityName = 'id-trainjob-${nameStem}-${resourceToken}'
var trainJobImageRepository = 'serverless-classifier-trainjob'
// Placeholder until the first `az acr build`: a small public sample image (never started by us).
var placeholderImage = 'mcr.microsoft.com/k8se/quickstart-jobs:latest'

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    tags: allTags
    logAnalyticsName: 'log-${nameStem}-${resourceToken}'
    appInsightsName: appInsightsName
  }
}

// Private networking: the VNet, its subnets and the storage accounts' privatelink DNS zones.
module network 'modules/network.bicep' = if (privateNetworking) {
  name: 'network'
  params: {
    location: location
    tags: allTags
    name: 'vnet-${nameStem}-${resourceToken}'
    addressPrefix: virtualNetworkAddressPrefix
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    tags: allTags
    name: storageAccountName
    publicNetworkAccess: privateNetworking ? 'Disabled' : 'Enabled'
    allowedIpRanges: privateNetworking ? operatorIpRanges : []
    containerNames: [
      imagesContainerName
      predictionsContainerName
      modelsContainerName
      trainingContainerName
      namedTrainingContainerName
      jobsContainerName
      featuresContainerName
      reviewContainerName
      checkpointsContainerName
    ]
    queueNames: [
      shardQueueName
      shardPoisonQueueName
      blobTriggerPoisonQueueName
    ]
  }
}

// The Functions host's storage: AzureWebJobsStorage (leases, keys in azure-webjobs-secrets, the blob trigger's host
// queue) and the deployment package. The app is Storage Blob Data Owner here, and here only.
module hostStorage 'modules/storage.bicep' = {
  name: 'hostStorage'
  params: {
    location: location
    tags: allTags
    name: hostStorageAccountName
    publicNetworkAccess: privateNetworking ? 'Disabled' : 'Enabled'
    containerNames: [
      deploymentContainerName
    ]
  }
}

module storagePrivateEndpoints 'modules/storagePrivateEndpoints.bicep' = if (privateNetworking) {
  name: 'storagePrivateEndpoints'
  dependsOn: [
    storage
  ]
  params: {
    location: location
    tags: allTags
    storageAccountName: storageAccountName
    subnetId: network!.outputs.endpointsSubnetId
    services: network!.outputs.storageServices
    zoneIds: network!.outputs.storageZoneIds
  }
}

module hostStoragePrivateEndpoints 'modules/storagePrivateEndpoints.bicep' = if (privateNetworking) {
  name: 'hostStoragePrivateEndpoints'
  dependsOn: [
    hostStorage
  ]
  params: {
    location: location
    tags: allTags
    storageAccountName: hostStorageAccountName
    subnetId: network!.outputs.endpointsSubnetId
    services: network!.outputs.storageServices
    zoneIds: network!.outputs.storageZoneIds
  }
}

module functionApp 'modules/functionApp.bicep' = {
  name: 'functionApp'
  dependsOn: [
    storage
    hostStorage
    monitoring
  ]
  params: {
    location: location
    tags: union(allTags, { 'azd-service-name': 'functions' })
    name: functionAppName
    planName: 'plan-${nameStem}-${resourceToken}'
    hostStorageAccountName: hostStorageAccountName
    dataStorageAccountName: storageAccountName
    deploymentContainerName: deploymentContainerName
    appInsightsName: appInsightsName
    instanceMemoryMB: functionInstanceMemoryMB
    maximumInstanceCount: functionMaximumInstanceCount
    imagesContainerName: imagesContainerName
    predictionsContainerName: predictionsContainerName
    modelsContainerName: modelsContainerName
    trainingContainerName: trainingContainerName
    reviewContainerName: reviewContainerName
    namedTrainingContainerName: namedTrainingContainerName
    jobsContainerName: jobsContainerName
    featuresContainerName: featuresContainerName
    shardQueueName: shardQueueName
    reviewSignInClientId: reviewSignInClientId
    customVisionProjects: customVisionProjects
    customVisionKeyVaultName: customVisionKeyVaultName
    customVisionKeySecretName: customVisionKeySecretName
    customVisionPredictionKeys: customVisionPredictionKeys
    virtualNetworkSubnetId: privateNetworking ? network!.outputs.functionsSubnetId : ''
  }
}

// What the app's code touches on the data account (src/Functions, src/ModelCore/Serving), and nothing more.
module functionAppDataRoles 'modules/storageDataRoles.bicep' = {
  name: 'functionAppDataRoles'
  dependsOn: [
    storage
  ]
  params: {
    storageAccountName: storageAccountName
    principalId: functionApp.outputs.principalId
    principalKey: resourceId('Microsoft.Web/sites', functionAppName)
    principalLabel: 'Functions app'
    containerRoles: [
      { container: imagesContainerName, roleId: blobReader, why: 'read uploads (blob trigger, sweep, shards, review).' }
      { container: modelsContainerName, roleId: blobReader, why: 'read the published model and current.json.' }
      { container: predictionsContainerName, roleId: blobContributor, why: 'write and remove predictions.' }
      { container: reviewContainerName, roleId: blobContributor, why: 'the review queue and staged labels.' }
      { container: trainingContainerName, roleId: blobContributor, why: 'approved labels; features shards read their images here.' }
      { container: namedTrainingContainerName, roleId: blobContributor, why: 'approved labels of named models\' uploads (<model>/<label>/<file>).' }
      { container: jobsContainerName, roleId: blobContributor, why: 'shard work and results of fan-out jobs.' }
      { container: featuresContainerName, roleId: blobContributor, why: 'features that features shards write.' }
    ]
    queueRoles: [
      { queue: shardQueueName, roleId: queueReader, why: 'the ClassifyShard queue trigger (peek, length).' }
      { queue: shardQueueName, roleId: queueProcessor, why: 'the ClassifyShard queue trigger (receive, delete).' }
      { queue: shardPoisonQueueName, roleId: queueSender, why: 'the host moves a shard message here after its last delivery.' }
      { queue: blobTriggerPoisonQueueName, roleId: queueSender, why: 'the blob trigger puts a poison blob\'s message here.' }
    ]
  }
}

module eventGridTopic 'modules/eventGridTopic.bicep' = {
  name: 'eventGridTopic'
  dependsOn: [
    storage
  ]
  params: {
    location: location
    tags: allTags
    name: systemTopicName
    storageAccountName: storageAccountName
  }
}

module registry 'modules/registry.bicep' = {
  name: 'registry'
  params: {
    location: location
    tags: allTags
    name: registryName
    skuName: containerRegistrySku
  }
}

module trainJob 'modules/trainJob.bicep' = {
  name: 'trainJob'
  dependsOn: [
    storage
  ]
  params: {
    location: location
    tags: allTags
    environmentName: 'cae-${nameStem}-${resourceToken}'
    jobName: take('caj-train-${resourceToken}', 32)
    identityName: trainJobIdentityName
    registryName: registryName
    storageAccountName: storageAccountName
    logAnalyticsId: monitoring.outputs.logAnalyticsId
    gpuWorkloadProfileType: gpuWorkloadProfileType
    image: empty(trainJobImageTag)
      ? placeholderImage
      : '${registry.outputs.loginServer}/${trainJobImageRepository}:${trainJobImageTag}'
    imageFromRegistry: !empty(trainJobImageTag)
    args: trainJobArgs
    cpu: trainJobCpu
    memory: trainJobMemory
    replicaTimeoutSeconds: trainJobTimeoutSeconds
    jobsContainerName: jobsContainerName
    featuresContainerName: featuresContainerName
    shardQueueName: shardQueueName
    infrastructureSubnetId: privateNetworking ? network!.outputs.jobsSubnetId : ''
  }
}

// What the job's commands touch (train [--feature-cache] [--distributed] [--publish], classify --container --distributed,
// models promote, monitor): it reads the data and writes models, features and fan-out jobs; it never writes images,
// predictions, training data or the review queue (classify --container without --distributed and trainjob review are
// the operator's, from their own machine).
module trainJobDataRoles 'modules/storageDataRoles.bicep' = {
  name: 'trainJobDataRoles'
  dependsOn: [
    storage
  ]
  params: {
    storageAccountName: storageAccountName
    principalId: trainJob.outputs.identityPrincipalId
    principalKey: resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', trainJobIdentityName)
    principalLabel: 'TrainJob'
    containerRoles: [
      { container: trainingContainerName, roleId: blobReader, why: 'read the labelled training data.' }
      { container: namedTrainingContainerName, roleId: blobReader, why: 'read named models\' training data (--data training-models/<model>).' }
      { container: imagesContainerName, roleId: blobReader, why: 'list uploads for classify --container --distributed.' }
      { container: predictionsContainerName, roleId: blobReader, why: 'skip classified uploads (classify --distributed), monitor.' }
      { container: modelsContainerName, roleId: blobContributor, why: 'publish models, move current.json (train --publish, models promote).' }
      { container: featuresContainerName, roleId: blobContributor, why: 'the feature cache (train --feature-cache).' }
      { container: checkpointsContainerName, roleId: blobContributor, why: 'the run\'s checkpoint, kept after every epoch and restored by a retried replica (train --checkpoints).' }
      { container: jobsContainerName, roleId: blobContributor, why: 'plan and follow fan-out jobs (--distributed).' }
    ]
    queueRoles: [
      { queue: shardQueueName, roleId: queueSender, why: 'enqueue shards of a fanned-out job (--distributed).' }
    ]
  }
}

// The optional operator: uploads images and training data, reviews with trainjob review, promotes models, reads results.
module operatorDataRoles 'modules/storageDataRoles.bicep' = if (!empty(operatorPrincipalId)) {
  name: 'operatorDataRoles'
  dependsOn: [
    storage
  ]
  params: {
    storageAccountName: storageAccountName
    principalId: operatorPrincipalId
    principalKey: operatorPrincipalId
    principalType: operatorPrincipalType
    principalLabel: 'Operator'
    // User delegation SAS for tools (README, "Moving from Custom Vision"): the key is an account-level operation.
    delegator: true
    containerRoles: [
      { container: imagesContainerName, roleId: blobContributor, why: 'upload images to classify.' }
      { container: trainingContainerName, roleId: blobContributor, why: 'upload and approve training data (trainjob review).' }
      { container: namedTrainingContainerName, roleId: blobContributor, why: 'approve named models\' labels (trainjob review approve).' }
      { container: reviewContainerName, roleId: blobContributor, why: 'trainjob review export, import, approve, reject.' }
      { container: modelsContainerName, roleId: blobContributor, why: 'list and promote models (trainjob models).' }
      { container: predictionsContainerName, roleId: blobReader, why: 'read predictions.' }
      { container: jobsContainerName, roleId: blobReader, why: 'follow fan-out jobs.' }
    ]
  }
}

// Names, ids and URLs only: nothing here is a secret.
output AZURE_LOCATION string = location
output STORAGE_ACCOUNT_NAME string = storage.outputs.name
output STORAGE_BLOB_ENDPOINT string = storage.outputs.blobEndpoint
output HOST_STORAGE_ACCOUNT_NAME string = hostStorage.outputs.name
output FUNCTION_APP_NAME string = functionApp.outputs.name
output FUNCTION_APP_URL string = 'https://${functionApp.outputs.defaultHostName}'
output FUNCTION_APP_PRINCIPAL_ID string = functionApp.outputs.principalId
output APPLICATION_INSIGHTS_NAME string = monitoring.outputs.appInsightsName
output LOG_ANALYTICS_WORKSPACE_ID string = monitoring.outputs.logAnalyticsId
output EVENT_GRID_SYSTEM_TOPIC_NAME string = eventGridTopic.outputs.name
output IMAGES_CONTAINER_NAME string = imagesContainerName
output PREDICTIONS_CONTAINER_NAME string = predictionsContainerName
output CONTAINER_REGISTRY_NAME string = registry.outputs.name
output CONTAINER_REGISTRY_LOGIN_SERVER string = registry.outputs.loginServer
output CONTAINER_REGISTRY_SKU string = containerRegistrySku
output TRAINJOB_IMAGE_REPOSITORY string = trainJobImageRepository
output CONTAINER_APPS_ENVIRONMENT_NAME string = trainJob.outputs.environmentName
output TRAINJOB_NAME string = trainJob.outputs.jobName
output TRAINJOB_IDENTITY_CLIENT_ID string = trainJob.outputs.identityClientId
output TRAINJOB_IDENTITY_PRINCIPAL_ID string = trainJob.outputs.identityPrincipalId
